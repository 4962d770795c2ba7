// ort_session.h: run an ONNX model with ONNX Runtime's C++ API (Ort::Env, Ort::Session,
// Ort::Value::CreateTensor, Session::Run). One float input, one float output, any batch.
// Used by course.cpp.ort_cpp_session(path); checked against ORT's Python API to <= 1e-6
// (tests/test_ort_cpp.py). Needs the ORT headers (`course setup-ort`) and libonnxruntime.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace course_ort {

// One Ort::Env per process: it owns the logging and the thread pools' defaults.
inline Ort::Env& env() {
    static Ort::Env instance(ORT_LOGGING_LEVEL_ERROR, "course");
    return instance;
}

class OrtModel {
public:
    OrtModel(const std::string& path, int intra_op_threads) {
        Ort::SessionOptions options;
        options.SetIntraOpNumThreads(intra_op_threads);
        options.SetInterOpNumThreads(1);
        options.SetGraphOptimizationLevel(GraphOptimizationLevel::ORT_ENABLE_ALL);
        session_ = Ort::Session(env(), path.c_str(), options);
        if (session_.GetInputCount() != 1 || session_.GetOutputCount() != 1) {
            throw std::runtime_error("OrtModel supports one input and one output; this model has " +
                                     std::to_string(session_.GetInputCount()) + " inputs and " +
                                     std::to_string(session_.GetOutputCount()) + " outputs");
        }
        Ort::AllocatorWithDefaultOptions allocator;
        input_name_ = session_.GetInputNameAllocated(0, allocator).get();
        output_name_ = session_.GetOutputNameAllocated(0, allocator).get();
        // Dynamic dimensions (the batch) come back as -1.
        // The shape info is a view into the type info: keep the type info alive while reading.
        Ort::TypeInfo type_info = session_.GetInputTypeInfo(0);
        auto input_info = type_info.GetTensorTypeAndShapeInfo();
        if (input_info.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) {
            throw std::runtime_error("OrtModel supports float32 inputs only");
        }
        input_shape_ = input_info.GetShape();
        Ort::TypeInfo out_type_info = session_.GetOutputTypeInfo(0);
        model_output_shape_ = out_type_info.GetTensorTypeAndShapeInfo().GetShape();
    }

    std::string input_name() const { return input_name_; }
    std::string output_name() const { return output_name_; }
    int input_rank() const { return static_cast<int>(input_shape_.size()); }
    int64_t input_dim(int i) const { return input_shape_.at(i); }
    // The output shape the model declares (-1 where it is dynamic), before any run.
    int model_output_rank() const { return static_cast<int>(model_output_shape_.size()); }
    int64_t model_output_dim(int i) const { return model_output_shape_.at(i); }

    // Run on x, writing straight into out (shape known in advance): no copy on either side.
    void run_into(const float* x, const int64_t* shape, int rank, float* out,
                  const int64_t* out_shape, int out_rank) {
        Ort::MemoryInfo memory = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
        Ort::Value input = tensor(memory, const_cast<float*>(x), shape, rank);
        Ort::Value output = tensor(memory, out, out_shape, out_rank);
        const char* input_names[] = {input_name_.c_str()};
        const char* output_names[] = {output_name_.c_str()};
        session_.Run(Ort::RunOptions{nullptr}, input_names, &input, 1, output_names, &output, 1);
    }

    // Run on x when the output shape is not known in advance: ORT allocates the output, which
    // stays here until copy_output.
    void run(const float* x, const int64_t* shape, int rank) {
        Ort::MemoryInfo memory = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
        Ort::Value input = tensor(memory, const_cast<float*>(x), shape, rank);  // ORT only reads x
        const char* input_names[] = {input_name_.c_str()};
        const char* output_names[] = {output_name_.c_str()};
        auto outputs = session_.Run(Ort::RunOptions{nullptr}, input_names, &input, 1,
                                    output_names, 1);
        auto info = outputs[0].GetTensorTypeAndShapeInfo();
        if (info.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) {
            throw std::runtime_error("OrtModel supports float32 outputs only");
        }
        output_shape_ = info.GetShape();
        const float* data = outputs[0].GetTensorData<float>();
        output_.assign(data, data + info.GetElementCount());
    }

    int output_rank() const { return static_cast<int>(output_shape_.size()); }
    int64_t output_dim(int i) const { return output_shape_.at(i); }

    void copy_output(float* out, int64_t n) const {
        if (n != static_cast<int64_t>(output_.size())) {
            throw std::invalid_argument("copy_output: out has " + std::to_string(n) +
                                        " elements, the output has " +
                                        std::to_string(output_.size()));
        }
        std::memcpy(out, output_.data(), output_.size() * sizeof(float));
    }

private:
    // A tensor that wraps data (count = product of shape) without copying it.
    static Ort::Value tensor(const Ort::MemoryInfo& memory, float* data, const int64_t* shape,
                             int rank) {
        size_t count = 1;
        for (int i = 0; i < rank; i++) count *= static_cast<size_t>(shape[i]);
        return Ort::Value::CreateTensor<float>(memory, data, count, shape, rank);
    }

    Ort::Session session_{nullptr};
    std::string input_name_, output_name_;
    std::vector<int64_t> input_shape_, output_shape_, model_output_shape_;
    std::vector<float> output_;
};

}  // namespace course_ort
